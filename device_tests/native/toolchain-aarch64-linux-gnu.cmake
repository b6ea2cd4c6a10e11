# CMake toolchain file: aarch64 Linux (glibc) with Debian bookworm's g++-aarch64-linux-gnu
# unpacked (not installed) into one folder, which is also the sysroot:
#
#   cmake -S device_tests/native -B build/native/aarch64/cmake \
#     -DCMAKE_TOOLCHAIN_FILE=device_tests/native/toolchain-aarch64-linux-gnu.cmake \
#     -DBACKDROP_CROSS_ROOT=.cache/backdrop-native/cross-aarch64 ...
#
# device_tests/native/build.sh --arch aarch64 makes that folder (apt-get download + dpkg -x)
# and its backdrop-bin/ wrappers, which start the compilers with
# LD_LIBRARY_PATH=<folder>/usr/lib/x86_64-linux-gnu: the cross binutils need host libraries
# that come with the folder, not with the machine. The sysroot is the folder itself (the
# cross libc.so linker script names /usr/aarch64-linux-gnu/lib/..., which --sysroot prefixes).
# BACKDROP_CROSS_ROOT may also come from the environment.
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)

if(NOT BACKDROP_CROSS_ROOT AND DEFINED ENV{BACKDROP_CROSS_ROOT})
  set(BACKDROP_CROSS_ROOT "$ENV{BACKDROP_CROSS_ROOT}")
endif()
if(NOT BACKDROP_CROSS_ROOT)
  message(FATAL_ERROR "set BACKDROP_CROSS_ROOT: the unpacked cross compiler (device_tests/native/build.sh --arch aarch64 makes it)")
endif()
get_filename_component(BACKDROP_CROSS_ROOT "${BACKDROP_CROSS_ROOT}" ABSOLUTE)
set(BACKDROP_CROSS_ROOT "${BACKDROP_CROSS_ROOT}" CACHE PATH "the unpacked aarch64 cross compiler (also the sysroot)")
# try_compile projects (compiler checks, find_package(Threads)) read this file again.
list(APPEND CMAKE_TRY_COMPILE_PLATFORM_VARIABLES BACKDROP_CROSS_ROOT)

set(_bin "${BACKDROP_CROSS_ROOT}/backdrop-bin")
if(NOT EXISTS "${_bin}/aarch64-linux-gnu-g++")
  message(FATAL_ERROR "${_bin}/aarch64-linux-gnu-g++ not found (device_tests/native/build.sh --arch aarch64 writes it)")
endif()
set(CMAKE_C_COMPILER "${_bin}/aarch64-linux-gnu-gcc")
set(CMAKE_CXX_COMPILER "${_bin}/aarch64-linux-gnu-g++")
set(CMAKE_SYSROOT "${BACKDROP_CROSS_ROOT}")

# Libraries and headers from the target side only; programs from the host.
set(CMAKE_FIND_ROOT_PATH "${BACKDROP_CROSS_ROOT}/usr/aarch64-linux-gnu")
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)
