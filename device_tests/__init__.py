"""Where artifacts run (``backdrop.device_tests``): one interface over this host's runtimes,
emulators and phones (device_tests/base.py), and the parity check over golden sequences.
Each device is one module registering itself in DEVICES; import them here, explicitly (the one
discovery mechanism). Nothing in the export stage imports this package."""

from backdrop.device_tests.base import DEVICES, Device, DeviceDescription, DeviceError, TimingProtocol, get_device

__all__ = ["DEVICES", "Device", "DeviceDescription", "DeviceError", "TimingProtocol", "get_device"]

# The registry lines: one import per device module.
from backdrop.device_tests import adb_device as _adb_device  # noqa: E402,F401
from backdrop.device_tests import host as _host  # noqa: E402,F401
from backdrop.device_tests import host_native as _host_native  # noqa: E402,F401
from backdrop.device_tests import qemu_arm64 as _qemu_arm64  # noqa: E402,F401
