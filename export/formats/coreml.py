"""Core ML ``.mlpackage`` (ML program computing in fp16) for iPhones, and its spec check for Linux hosts.

Two artifacts per bucket, one per state form (models/wrappers.py):

- ``native`` -> ``model-coreml-fp16-native.mlpackage``, iOS 18 / macOS 15: a stateful model.
  Inputs ``frame``, ``reset``; output ``mask``; state ``mask_state`` (a Core ML ``MLState``).
  The app makes one state with ``model.makeState()`` (zero-initialised by Core ML) and passes
  it to every prediction; it resets by passing ``reset = 1`` or by making a fresh state.
- ``explicit`` -> ``model-coreml-fp16-explicit.mlpackage``, iOS 16 / macOS 13: inputs
  ``frame``, ``prev_mask``; outputs ``mask``, ``next_mask``; the app feeds ``next_mask`` back.

Three precisions, all computing in fp16 (``compute_precision=FLOAT16``): ``fp16`` (fp16
weights), and ``int8`` (linear, per channel) and ``palette6`` (6-bit k-means palettized), whose
weights are compressed after conversion by :mod:`backdrop.quantization.coreml_compress`
(weight-only: activations stay fp16; the weight error read back from the package goes into
``details["compression"]``). Files ``model-coreml-<precision>-<form>.mlpackage``; the
compressed-weight ops are iOS 16 features, so the deployment targets stay those of the forms.

Every input, output and state is **float16** (``MLMultiArrayDataType.float16``, iOS 16+),
not float32: the model computes in fp16 anyway (``compute_precision=FLOAT16``, what the Neural
Engine runs), a Core ML state must be fp16, and fp16 I/O spares a cast op at every boundary
and lets the explicit form's ``next_mask`` go straight back in as ``prev_mask``. The
artifact's TensorSpecs say ``float16`` accordingly.

Core ML cannot run on Linux (``MLModel.predict`` is macOS-only), so instead of parity the
export pipeline calls :func:`validate_coreml_spec`, which reads the saved package and checks
it against the :class:`~backdrop.export.artifact.Artifact`; ``backdrop parity`` on a Mac
runs the real check.

Upstream facts designed around (../shared/field-notes.md):

- States need iOS 18 and fixed shapes (coremltools #2537): one fixed-shape model per bucket.
- A stateful model fails on the Neural Engine unless the state's dimensions are multiples of
  32 (https://github.com/apple/coremltools/issues/2631): reported as an ``ane:`` warning.
- Non-constant ``pad`` outside the last two dimensions fails at load time, not at
  conversion (https://github.com/apple/coremltools/issues/2571): checked in the MIL program.
- coremltools names a graph output by its var, so the explicit wrapper's ``(mask, mask)``
  converts to two outputs with one (wrong) name; :func:`_distinct_outputs` fixes that.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import shutil
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from backdrop import __version__
from backdrop.core.contract import SelfDescription, in_file_rule
from backdrop.export.artifact import Artifact, TensorSpec, io_specs
from backdrop.export.formats.base import (
    FORMATS,
    ArtifactKind,
    ExportError,
    ExportRequest,
    FrameRunner,
    OfflineCheck,
    check_file_exists,
    decode_description,
)
from backdrop.models.wrappers import STATE_FORMS, example_inputs, wrap
from backdrop.quantization.coreml_compress import (
    COMPRESSION,
    WEIGHT_THRESHOLD,
    compress_weights,
    compression_details,
    program_ops,
    weight_bytes,
)

# Per state form: the coremltools deployment target, also the artifact's ``min_os`` (the
# same model runs from macOS 15 / macOS 13 respectively). The same for every precision: the
# compressed-weight ops of ML programs (constexpr_*) exist from iOS 16, and coremltools picks
# their iOS 18 versions in the native form's iOS 18 program.
DEPLOYMENT_TARGETS = {"native": "iOS18", "explicit": "iOS16"}

IO_DTYPE = "float16"
"""dtype of every input, output and state (see the module docstring for why)."""

ANE_STATE_MULTIPLE = 32
"""Neural Engine rule for state tensors (coremltools #2631)."""

VERIFICATION_NOTE = (
    "Core ML cannot run on Linux: spec validated (names, shapes, dtypes, states, ANE constraints); "
    "run `backdrop parity` on macOS"
)

METADATA_PREFIX = "backdrop."

# Passes that coremltools' mlprogram backend re-runs after its own passes. When converting an
# already-optimised MIL program these are all we want: the rest of the default pipeline
# includes noop_elimination, which would remove the identity op _distinct_outputs adds.
_FINISH_PASSES = [
    "common::const_elimination",
    "common::const_deduplication",
    "common::cast_optimization",
    "common::dead_code_elimination",
    "common::dedup_op_and_var_names",
]

# A tqdm progress-bar line: "Running MIL default pipeline:  42%|####  | 40/95 [00:02<00:03, ...]"
# or, without a total, "Running MIL frontend_milinternal pipeline: 0 passes [00:00, ? passes/s]".
_PROGRESS_LINE = re.compile(r"\d+%\||\[\d+:\d+[<,]")


# --------------------------------------------------------------------------------------------
# Export


class CoreMLFormat:
    """Core ML ML program, fp16, both state forms (see the module docstring).

    Args:
        progress: show coremltools' progress bars on stderr. With False they are dropped and
            any other stderr text of the conversion is passed through.
    """

    name = "coreml"
    runtime = "coreml"
    summary = "Core ML ML program (.mlpackage), stateful for iOS 18 and explicit-state for iOS 16"
    state_forms = ("native", "explicit")
    # int8 and palette6 compress the weights of the converted fp16 program (COMPRESSION).
    precisions = ("fp16", "int8", "palette6")
    kinds = (ArtifactKind("coreml", ".mlpackage", "coreml", ("native", "explicit"), "Core ML package"),)
    reset_alternative = "start from a fresh state (model.makeState())"
    runtime_packages = ("coremltools",)
    color = "tab:purple"
    int8_speedup_target: float | None = None

    def why_not_here(self, artifact: Artifact) -> str:
        if sys.platform != "darwin":
            return "Core ML runs only on macOS/iOS; run `backdrop parity --device coreml-mac` on a Mac for the real check."
        return "" if artifact.state_form in self.state_forms else f"no {artifact.state_form!r} state form"

    def check_offline(self, artifact: Artifact) -> OfflineCheck:
        """:func:`validate_coreml_spec`: the package's spec against what the artifact declares."""
        check = validate_coreml_spec(artifact.path, artifact)
        return OfflineCheck(tuple(check.errors), tuple(check.warnings), "Core ML spec check")

    def read_description(self, artifact: Artifact) -> dict | None:
        """The package's ``user_defined_metadata`` (keys :data:`METADATA_PREFIX`)."""
        spec = _load_spec(check_file_exists(artifact))
        return decode_description(dict(spec.description.metadata.userDefined), METADATA_PREFIX)

    def load(self, artifact: Artifact, threads: int = 0) -> FrameRunner:
        """``coremltools.models.MLModel`` (compute units: all; macOS only). The native form makes
        one state (``make_state``) and passes it to every prediction.

        Written against coremltools 9's documented ``make_state`` / ``predict(state=...)``; it
        has not been run from this repository's Linux CI."""
        import coremltools as ct

        path = check_file_exists(artifact)
        try:
            model = ct.models.MLModel(str(path), compute_units=ct.ComputeUnit.ALL)
        except Exception as e:  # coremltools raises plain Exceptions on bad packages
            raise ExportError(f"{artifact.key}: Core ML could not load {path}: {e}") from e
        in_names = [s.name for s in artifact.inputs]
        out_names = [s.name for s in artifact.outputs]
        state = model.make_state() if artifact.state_form == "native" else None

        def call(inputs):
            feed = dict(zip(in_names, inputs))
            out = model.predict(feed, state=state) if state is not None else model.predict(feed)
            return [np.asarray(out[n]) for n in out_names]

        return call

    def __init__(self, progress: bool = True) -> None:
        self.progress = progress

    def export(self, request: ExportRequest) -> list[Artifact]:
        """Convert ``request.model`` for one bucket and state form and save the .mlpackage.

        Raises:
            ExportError: unsupported precision or state form; ``float_units`` given (Core ML
                compresses weights only, every large weight alike); an op Core ML cannot
                convert (named); or torch.export / Core ML conversion / compression failed
                otherwise.
        """
        if request.precision not in self.precisions:
            raise ExportError(
                f"Format {self.name!r} cannot export precision {request.precision!r}; "
                f"supported: {', '.join(self.precisions)}."
            )
        if request.state_form not in self.state_forms:
            raise ExportError(
                f"Format {self.name!r} has no state form {request.state_form!r}; "
                f"supported: {', '.join(self.state_forms)}."
            )
        if request.float_units:
            raise ExportError(
                f"Format {self.name!r} cannot keep quantization units in float "
                f"({', '.join(request.float_units)}): its {request.precision} precision compresses weights "
                "only (activations stay fp16), so there is no per-unit fallback. Export fp16 instead."
            )
        import coremltools as ct

        b, form = request.bucket, request.state_form
        where = f"{b.name} {b.size}/{form}"
        inputs, outputs, states = io_specs(form, b.height, b.width, dtype=IO_DTYPE)
        wrapper = wrap(request.model, form, b.height, b.width)
        started = time.perf_counter()
        try:
            with torch.no_grad():
                ep = torch.export.export(wrapper, example_inputs(form, b.height, b.width))
            ep = ep.run_decompositions({})
        except Exception as e:
            raise ExportError(f"torch.export of the {where} wrapper for Core ML failed: {e}") from e

        target = getattr(ct.target, DEPLOYMENT_TARGETS[form])
        options = dict(
            inputs=[_ct_tensor(ct, t) for t in inputs],
            outputs=[ct.TensorType(name=t.name, dtype=np.float16) for t in outputs],
            minimum_deployment_target=target,
            compute_precision=ct.precision.FLOAT16,
        )
        if states:
            options["states"] = [
                ct.StateType(wrapped_type=ct.TensorType(shape=s.shape, dtype=np.dtype(s.dtype).type), name=s.name)
                for s in states
            ]
        try:
            with _progress_bars(self.progress):
                # Through the MIL program, so that outputs sharing one var get their own.
                prog = ct.convert(ep, convert_to="milinternal", **options)
                _distinct_outputs(prog, [t.name for t in outputs])
                mlmodel = ct.convert(
                    prog,
                    convert_to="mlprogram",
                    minimum_deployment_target=target,
                    compute_precision=ct.precision.FLOAT16,
                    pass_pipeline=ct.PassPipeline(_FINISH_PASSES, pipeline_name="backdrop_finish"),
                )
        except Exception as e:
            op = _unsupported_op(e)
            if op is not None:
                raise ExportError(
                    f"Core ML (coremltools {ct.__version__}) cannot convert op {op!r} in {where}. Rewrite "
                    "that part of the model with ops Core ML supports (docs/models.md), or leave Core ML "
                    "out of the target."
                ) from e
            raise ExportError(f"Core ML conversion of {where} failed: {type(e).__name__}: {e}") from e
        seconds = time.perf_counter() - started

        compression = None
        if request.precision in COMPRESSION:
            fp16_model = mlmodel
            try:
                with _progress_bars(self.progress):
                    started = time.perf_counter()
                    mlmodel = compress_weights(fp16_model, request.precision)
                    compress_seconds = time.perf_counter() - started
                    compression = compression_details(fp16_model, mlmodel, request.precision)
            except Exception as e:
                raise ExportError(
                    f"Core ML {request.precision} weight compression of {where} failed: {type(e).__name__}: {e}"
                ) from e
            if not compression["weights_compressed"]:
                raise ExportError(
                    f"Core ML {request.precision} of {where}: no weight tensor has more than {WEIGHT_THRESHOLD} "
                    "elements, so nothing would be compressed and the package would be the fp16 one. "
                    "Export fp16 for this model."
                )
            compression["compress_seconds"] = round(compress_seconds, 2)
            compression["error_seconds"] = round(time.perf_counter() - started - compress_seconds, 2)

        _set_metadata(mlmodel, request, inputs, outputs, states)
        request.out_dir.mkdir(parents=True, exist_ok=True)
        path = request.out_dir / f"model-coreml-{request.precision}-{form}.mlpackage"
        if path.exists():
            shutil.rmtree(path)
        mlmodel.save(str(path))
        _finish_package(path, states)

        ops = mil_op_counts(_load_spec(path))
        details = {
            "model_type": "mlprogram",
            "deployment_target": DEPLOYMENT_TARGETS[form],
            "specification_version": int(target.value),
            "compute_precision": "float16",
            "io_dtype": IO_DTYPE,
            "binding": "by feature name",
            "mil_ops": ops,
            "convert_seconds": round(seconds, 2),
        }
        if compression is not None:
            compression["weight_bytes"] = weight_bytes(path)
            compression["weight_bytes_ratio"] = round(compression["weight_bytes"] / compression["fp16_weight_bytes"], 4)
            details["compression"] = compression
        return [
            Artifact(
                path=path,
                format=self.name,
                runtime=self.runtime,
                precision=request.precision,
                state_form=form,
                bucket=b,
                inputs=inputs,
                outputs=outputs,
                states=states,
                min_os=DEPLOYMENT_TARGETS[form],
                details=details,
                verified=None,
                verification_note=VERIFICATION_NOTE,
            )
        ]


# How coremltools reports an op without a converter (torch.export and TorchScript frontends).
_UNSUPPORTED_OP = (
    re.compile(r"Unsupported fx node \S+, kind (\S+)"),
    re.compile(r"convert function for op '([^']+)' not implemented"),
)


def _unsupported_op(error: Exception) -> str | None:
    """The op name in coremltools' "no converter for this op" error, else None."""
    for pattern in _UNSUPPORTED_OP:
        m = pattern.search(str(error))
        if m:
            return m.group(1)
    return None


def _ct_tensor(ct, spec: TensorSpec):
    return ct.TensorType(name=spec.name, shape=spec.shape, dtype=np.dtype(spec.dtype).type)


@contextlib.contextmanager
def _progress_bars(shown: bool):
    """Drop coremltools' tqdm bars from stderr unless ``shown``; pass other stderr text on."""
    if shown:
        yield
        return
    buf = io.StringIO()
    try:
        with contextlib.redirect_stderr(buf):
            yield
    finally:
        kept = [ln for ln in buf.getvalue().splitlines() if ln.strip() and not _PROGRESS_LINE.search(ln)]
        if kept:
            sys.stderr.write("\n".join(kept) + "\n")


def _distinct_outputs(prog, names: list[str]) -> None:
    """Give every output of ``prog``'s main function its own var, named ``names[i]``.

    coremltools names an output by renaming its var, so ``return mask, mask`` (the explicit
    wrapper) becomes two outputs that are one var with the last name, an invalid model
    description. A repeated var gets an ``identity`` op, which Core ML runs as a copy.
    """
    from coremltools.converters.mil import Builder as mb
    from coremltools.converters.mil.mil.scope import ScopeInfo, ScopeSource

    func = prog.functions["main"]
    outs = list(func.outputs)
    if len(outs) != len(names):
        raise ExportError(f"Core ML program has {len(outs)} outputs, expected {len(names)} ({', '.join(names)}).")
    new: list = []
    with func:
        for var, name in zip(outs, names):
            if any(var is v for v in new):
                # The torch.export frontend requires scope info on every op.
                scopes = (
                    ScopeInfo(source=ScopeSource.EXIR_STACK_TRACE, data=f"output_{name}"),
                    ScopeInfo(source=ScopeSource.EXIR_DEBUG_HANDLE, data=[None]),
                )
                with mb.scope(*scopes):
                    var = mb.identity(x=var, name=name)
            else:
                var.set_name(name)
            new.append(var)
        func.set_outputs(new)


def _set_metadata(mlmodel, request: ExportRequest, inputs, outputs, states) -> None:
    b, form = request.bucket, request.state_form
    config = getattr(request.model, "config", None)  # a Segmenter's; absent on stand-in modules
    description = SelfDescription(
        version=__version__,
        format=CoreMLFormat.name,
        precision=request.precision,
        state_form=form,
        bucket={"name": b.name, "height": b.height, "width": b.width},
        inputs=inputs,
        outputs=outputs,
        states=states,
        feedback=in_file_rule(form, CoreMLFormat.reset_alternative),
        model_config=config.to_dict() if config is not None else None,
        torch_version=torch.__version__,
    )
    usage = f"{DEPLOYMENT_TARGETS[form]}: {description.feedback}"
    weights = {
        "fp16": "fp16",
        "int8": "fp16 compute, int8 weights (linear, per channel)",
        "palette6": "fp16 compute, 6-bit palettized weights",
    }[request.precision]
    mlmodel.short_description = (
        f"backdrop person segmentation, bucket {b.name} {b.size} (HxW), {weights}. {usage} "
        "Binary mask = mask >= 0.5; crop the bucket padding and resize to the frame."
    )
    mlmodel.author = "backdrop"
    mlmodel.version = __version__
    for specs, desc in ((inputs, mlmodel.input_description), (outputs, mlmodel.output_description)):
        for t in specs:
            desc[t.name] = f"{t.meaning}. {t.dtype} {list(t.shape)} {t.layout}, range {list(t.value_range)}."
    meta = mlmodel.user_defined_metadata
    # A fixed date would be false and a real one breaks byte-for-byte repeatable exports.
    meta.pop("com.github.apple.coremltools.conversion_date", None)
    meta["com.github.apple.coremltools.source"] = f"torch=={torch.__version__}"
    meta["com.github.apple.coremltools.source_dialect"] = "TorchExport::ATEN"
    for k, v in description.fields().items():
        meta[METADATA_PREFIX + k] = v if isinstance(v, str) else json.dumps(v)


def _finish_package(path: Path, states: tuple[TensorSpec, ...]) -> None:
    """Describe the states, drop what Core ML does not read, make the package repeatable.

    coremltools has no public setter for state descriptions, so the saved spec is edited and
    re-serialised deterministically (protobuf map order is otherwise unspecified). The package
    manifest's item ids are random UUIDs; they are replaced by UUIDs derived from each item's
    path, which Core ML only needs to be unique within the package. coremltools also writes
    ``executorch_debug_handle_mapping.json`` (op provenance for ExecuTorch's Core ML delegate
    profiler) beside the manifest: no manifest item, never read by Core ML, about a tenth of
    the package, so it is removed. Files are made world-readable (coremltools writes the spec
    0600).
    """
    (path / "executorch_debug_handle_mapping.json").unlink(missing_ok=True)
    spec_file = path / "Data" / "com.apple.CoreML" / "model.mlmodel"
    spec = _load_spec(path)
    by_name = {s.name: s for s in states}
    for st in spec.description.state:
        if st.name in by_name:
            s = by_name[st.name]
            st.shortDescription = f"{s.meaning}. {s.dtype} {list(s.shape)} {s.layout}."
    spec_file.write_bytes(spec.SerializeToString(deterministic=True))

    manifest_file = path / "Manifest.json"
    manifest = json.loads(manifest_file.read_text())
    remap = {
        old: str(uuid.uuid5(uuid.NAMESPACE_URL, "backdrop-mlpackage:" + item["path"]))
        for old, item in manifest["itemInfoEntries"].items()
    }
    manifest["itemInfoEntries"] = {
        remap[k]: v for k, v in sorted(manifest["itemInfoEntries"].items(), key=lambda kv: remap[kv[0]])
    }
    manifest["rootModelIdentifier"] = remap[manifest["rootModelIdentifier"]]
    manifest_file.write_text(json.dumps(manifest, indent=4, sort_keys=True) + "\n")
    for f in path.rglob("*"):
        if f.is_file():
            f.chmod(0o644)


# --------------------------------------------------------------------------------------------
# Spec check (runs on Linux)


@dataclass(frozen=True)
class SpecCheck:
    """What :func:`validate_coreml_spec` found.

    Attributes:
        errors: the package does not match its artifact or cannot load on a device; the export
            must fail.
        warnings: the package works but not everywhere. Each starts with a tag; ``ane:`` means
            Core ML cannot run it on the Neural Engine (the app must load it with
            ``computeUnits = .cpuAndGPU``).
    """

    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors

    @property
    def ane_compatible(self) -> bool:
        return not any(w.startswith("ane:") for w in self.warnings)


def validate_coreml_spec(path: str | Path, artifact: Artifact) -> SpecCheck:
    """Check a saved ``.mlpackage`` against its artifact without running it (Linux-safe).

    Checks: the package loads as an ML program; its specification version is the state form's
    deployment target (iOS 18 native, iOS 16 explicit); input, output and state names, order,
    shapes and dtypes equal the artifact's TensorSpecs; no flexible shapes; no non-constant
    ``pad`` outside the last two dimensions (fails at load time on devices); the
    ``backdrop.state_form`` and ``backdrop.precision`` metadata match; the weights match the
    precision: an fp16 package has no compressed-weight (``constexpr_*``) op, an int8 or
    palette6 one has some, only of its kind (:data:`COMPRESSION`), each giving fp16 weights.
    Warns (``ane:``) when a state dimension other
    than 1 is not a multiple of 32. Dimensions of size 1 (batch, channel) are not flagged: the
    reported failures (coremltools #2631) concern the spatial sides.

    Args:
        path: the ``.mlpackage`` directory.
        artifact: what the exporter claims the package is.

    Returns:
        A :class:`SpecCheck`; ``errors`` empty means valid.
    """
    import coremltools as ct

    errors: list[str] = []
    warnings: list[str] = []
    path = Path(path)
    where = f"{path.name}"
    if not path.is_dir() or not (path / "Manifest.json").is_file():
        return SpecCheck([f"{where}: not an .mlpackage directory (no Manifest.json)"], [])
    try:
        spec = _load_spec(path)
    except Exception as e:  # a corrupt package is a finding, reported like the others
        return SpecCheck([f"{where}: cannot read the model spec: {type(e).__name__}: {e}"], [])

    kind = spec.WhichOneof("Type")
    if kind != "mlProgram":
        errors.append(f"{where}: model type is {kind!r}, expected an ML program ('mlProgram')")

    expected_target = DEPLOYMENT_TARGETS.get(artifact.state_form)
    if expected_target is None:
        errors.append(f"{where}: unknown state form {artifact.state_form!r}; valid: {', '.join(STATE_FORMS)}")
    else:
        want = int(getattr(ct.target, expected_target).value)
        if spec.specificationVersion != want:
            errors.append(
                f"{where}: specification version {spec.specificationVersion}, expected {want} "
                f"({expected_target}, the {artifact.state_form} form's deployment target)"
            )

    desc = spec.description
    errors += _check_features("input", desc.input, artifact.inputs, where)
    errors += _check_features("output", desc.output, artifact.outputs, where)
    errors += _check_features("state", desc.state, artifact.states, where)

    for st in desc.state:
        shape = _feature_shape(st)
        bad = [d for d in shape if d != 1 and d % ANE_STATE_MULTIPLE]
        if bad:
            warnings.append(
                f"ane: state {st.name!r} has shape {tuple(shape)}; dimension(s) {', '.join(map(str, bad))} are not "
                f"multiples of {ANE_STATE_MULTIPLE}, so Core ML fails on the Neural Engine (coremltools #2631). "
                "Load it with computeUnits = .cpuAndGPU, or use a bucket whose sides are multiples of 32."
            )

    if kind == "mlProgram":
        errors += _check_pads(spec, where)
        errors += _check_compression(spec, artifact.precision, where)

    meta = desc.metadata.userDefined
    for key, want in (("state_form", artifact.state_form), ("precision", artifact.precision)):
        got = meta.get(METADATA_PREFIX + key)
        if got != want:
            errors.append(f"{where}: metadata {METADATA_PREFIX}{key} is {got!r}, expected {want!r}")
    return SpecCheck(errors, warnings)


def _load_spec(path: Path):
    import coremltools as ct

    return ct.utils.load_spec(str(path))


def _feature_shape(feature) -> list[int]:
    t = feature.type
    which = t.WhichOneof("Type")
    if which == "multiArrayType":
        return list(t.multiArrayType.shape)
    if which == "stateType":
        return list(t.stateType.arrayType.shape)
    return []


def _check_features(kind: str, features, specs: tuple[TensorSpec, ...], where: str) -> list[str]:
    errors: list[str] = []
    got_names = [f.name for f in features]
    want_names = [s.name for s in specs]
    if got_names != want_names:
        errors.append(f"{where}: {kind} names are {got_names}, expected {want_names} (in this order)")
    by_name = {f.name: f for f in features}
    for s in specs:
        f = by_name.get(s.name)
        if f is None:
            continue
        t = f.type
        which = t.WhichOneof("Type")
        want_type = "stateType" if kind == "state" else "multiArrayType"
        if which != want_type:
            errors.append(f"{where}: {kind} {s.name!r} is a {which}, expected a {want_type}")
            continue
        arr = t.stateType.arrayType if kind == "state" else t.multiArrayType
        shape = tuple(arr.shape)
        if shape != tuple(s.shape):
            errors.append(f"{where}: {kind} {s.name!r} has shape {shape}, expected {tuple(s.shape)}")
        dtype = _proto_dtype(arr.dataType)
        if dtype != s.dtype:
            errors.append(f"{where}: {kind} {s.name!r} has dtype {dtype}, expected {s.dtype}")
        flex = arr.WhichOneof("ShapeFlexibility")
        if flex is not None:
            errors.append(
                f"{where}: {kind} {s.name!r} has a flexible shape ({flex}); every backdrop artifact is "
                "fixed-shape (states cannot be flexible, and ranges leave the Neural Engine)"
            )
    return errors


def _proto_dtype(data_type: int) -> str:
    from coremltools.proto import FeatureTypes_pb2

    enum = FeatureTypes_pb2.ArrayFeatureType.ArrayDataType
    names = {
        enum.Value("FLOAT16"): "float16",
        enum.Value("FLOAT32"): "float32",
        enum.Value("DOUBLE"): "float64",
        enum.Value("INT32"): "int32",
    }
    return names.get(data_type, enum.Name(data_type).lower() if data_type in enum.values() else f"enum {data_type}")


def mil_op_counts(spec) -> dict[str, int]:
    """Op type -> count over the ML program (consts excluded), sorted by type."""
    counts: dict[str, int] = {}
    for op in program_ops(spec):
        if op.type != "const":
            counts[op.type] = counts.get(op.type, 0) + 1
    return dict(sorted(counts.items()))


def _immediate(value):
    """The python value of an immediate MIL tensor (ints or strings), else None."""
    if value.WhichOneof("value") != "immediateValue":
        return None
    imm = value.immediateValue
    if imm.WhichOneof("value") != "tensor":
        return None
    tensor = imm.tensor
    which = tensor.WhichOneof("value")
    if which == "ints":
        return list(tensor.ints.values)
    if which == "strings":
        return list(tensor.strings.values)
    if which == "longInts":
        return list(tensor.longInts.values)
    return None


def _check_compression(spec, precision: str, where: str) -> list[str]:
    """Compressed-weight ops agree with ``precision`` and decompress to fp16."""
    from coremltools.proto import MIL_pb2

    if precision != "fp16" and precision not in COMPRESSION:
        return [f"{where}: unknown precision {precision!r}; Core ML artifacts are fp16, {', '.join(COMPRESSION)}"]
    allowed = COMPRESSION[precision]["ops"] if precision in COMPRESSION else ()
    found: dict[str, int] = {}
    not_fp16: list[str] = []
    for op in program_ops(spec):
        if not op.type.startswith("constexpr_"):
            continue
        found[op.type] = found.get(op.type, 0) + 1
        out = op.outputs[0]
        if out.type.tensorType.dataType != MIL_pb2.FLOAT16:
            not_fp16.append(f"{out.name} ({MIL_pb2.DataType.Name(out.type.tensorType.dataType).lower()})")
    errors = []
    wrong = {t: n for t, n in sorted(found.items()) if t not in allowed}
    if wrong:
        listed = ", ".join(f"{t} x{n}" for t, n in wrong.items())
        expected = f"only {', '.join(allowed)}" if allowed else "none (fp16 weights)"
        errors.append(f"{where}: a {precision} package has compressed-weight ops {listed}; expected {expected}")
    if allowed and not any(found.get(t) for t in allowed):
        errors.append(f"{where}: a {precision} package has no compressed weights (no {' or '.join(allowed)} op)")
    if not_fp16:
        errors.append(
            f"{where}: compressed weights must decompress to float16 (the compute precision); "
            f"{len(not_fp16)} do not: {', '.join(not_fp16[:3])}"
        )
    return errors


def _check_pads(spec, where: str) -> list[str]:
    """Non-constant ``pad`` ops may pad only the last two dimensions (coremltools #2571)."""
    consts = {}
    ops = list(program_ops(spec))
    for op in ops:
        if op.type == "const" and op.outputs:
            consts[op.outputs[0].name] = _immediate(op.attributes["val"]) if "val" in op.attributes else None

    def arg(op, name):
        if name not in op.inputs or not op.inputs[name].arguments:
            return None
        binding = op.inputs[name].arguments[0]
        if binding.WhichOneof("binding") == "value":
            return _immediate(binding.value)
        return consts.get(binding.name)

    errors = []
    for op in ops:
        if op.type != "pad":
            continue
        name = op.outputs[0].name if op.outputs else "?"
        mode = arg(op, "mode")
        mode = mode[0] if mode else "constant"  # MIL's default mode
        if mode == "constant":
            continue
        pads = arg(op, "pad")
        if pads is None:
            errors.append(f"{where}: {mode} pad op {name!r} has non-constant pad amounts; cannot prove it loads")
            continue
        # pad holds (before, after) per padded dimension, for the last len(pad) / 2 dims.
        outer = pads[:-4]
        if any(outer):
            errors.append(
                f"{where}: {mode} pad op {name!r} pads {pads} (before/after per dimension): Core ML "
                "supports non-constant padding only in the last two dimensions and fails at load time "
                "(coremltools #2571). Pad only H and W, or use constant padding."
            )
    return errors


FORMATS.add("coreml", CoreMLFormat())
