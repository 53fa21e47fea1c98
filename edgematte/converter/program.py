"""Read and edit a Paddle legacy inference program (``*.pdmodel`` + ``*.pdiparams``).

A ``.pdmodel`` is a serialized ``ProgramDesc`` protobuf (paddle ships the generated module as
``paddle.base.proto.framework_pb2``); a combined ``.pdiparams`` holds every persistable variable of
the program, sorted by name, each as a serialized LoDTensor. Both are read here with plain Python, so
a corrupt or truncated file becomes a one-line :class:`EdgematteError` instead of a crash deep in
Paddle's C++ loader.

Reading never runs the model (:mod:`edgematte.converter.freeze` fixes its input shapes). Nothing here
modifies the user's files. Paddle is imported lazily (importing this module costs nothing).
"""

import contextlib
import struct
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, FrozenSet, List, Optional, Sequence, Tuple, Union

from ..core.errors import EdgematteError

# Folder layouts of an exported model, in the order they are tried.
MODEL_STEMS = ("model", "inference")

# framework.proto VarType.Type names -> numpy dtype names and element sizes in bytes.
_DTYPES = {
    "BOOL": ("bool", 1),
    "INT8": ("int8", 1),
    "UINT8": ("uint8", 1),
    "INT16": ("int16", 2),
    "INT32": ("int32", 4),
    "INT64": ("int64", 8),
    "FP16": ("float16", 2),
    "BF16": ("bfloat16", 2),
    "FP32": ("float32", 4),
    "FP64": ("float64", 8),
}

# Persistable variables that are not weights (the params file does not hold them).
_NON_PARAM_VAR_TYPES = ("FEED_MINIBATCH", "FETCH_LIST", "RAW", "STEP_SCOPES", "READER")

# Ops that have no compile-time shape inference (control flow and I/O).
_OPS_WITHOUT_INFER_SHAPE = frozenset(
    {"feed", "fetch", "conditional_block", "while", "recurrent", "select_input", "select_output"}
)


@contextlib.contextmanager
def static_mode():
    """Paddle's static-graph mode for the block, restoring dynamic mode after if it was on (Paddle's
    default); programs are loaded, built and run in static mode."""
    import paddle

    was_dynamic = paddle.in_dynamic_mode()
    paddle.enable_static()
    try:
        yield
    finally:
        if was_dynamic:
            paddle.disable_static()


def _framework_pb2():
    """paddle's generated protobuf module for ``framework.proto`` (importing it imports paddle)."""
    try:
        from paddle.base.proto import framework_pb2
    except ImportError as e:  # pragma: no cover - the converter profile always has paddle
        raise EdgematteError(
            "reading a .pdmodel needs paddlepaddle 2.6 (pip install 'edgematte[convert]')"
        ) from e
    return framework_pb2


# ----------------------------------------------------------------------------- locating files
@dataclass(frozen=True)
class ModelFiles:
    """The two files of one legacy Paddle inference model."""

    model: Path
    params: Path

    @property
    def stem(self) -> str:
        return self.model.stem


def locate_model_files(source: Union[str, Path, Sequence]) -> ModelFiles:
    """Find ``(.pdmodel, .pdiparams)`` from a folder, a ``.pdmodel`` path, a path prefix or a pair.

    A folder may hold ``model.pdmodel`` (PaddleSeg export), ``inference.pdmodel`` (FastDeploy) or a
    single ``*.pdmodel``; the params file is the one with the same stem. Both files must exist.
    """
    if isinstance(source, (tuple, list)):
        if len(source) != 2:
            raise EdgematteError(f"{source!r}: expected (model.pdmodel, model.pdiparams)")
        model, params = Path(source[0]), Path(source[1])
    else:
        path = Path(source)
        if path.is_dir():
            named = [path / f"{stem}.pdmodel" for stem in MODEL_STEMS if (path / f"{stem}.pdmodel").is_file()]
            found = named or sorted(path.glob("*.pdmodel"))
            if len(found) != 1:
                listed = ", ".join(p.name for p in found) or "none"
                raise EdgematteError(f"{path}: expected one Paddle model (*.pdmodel) in the folder, found {listed}")
            model = found[0]
        elif path.suffix == ".pdmodel":
            model = path
        else:  # a prefix such as out/model (paddle.jit.save's convention)
            model = path.with_name(path.name + ".pdmodel")
        params = model.with_suffix(".pdiparams")
    for f, kind in ((model, "model (.pdmodel)"), (params, "parameters (.pdiparams)")):
        if not f.is_file():
            raise EdgematteError(f"{f}: {kind} file not found")
    return ModelFiles(model, params)


# ----------------------------------------------------------------------------- reading
@dataclass(frozen=True)
class VarSpec:
    """One dense-tensor variable of the program's main block; ``shape`` uses -1 for dynamic dims."""

    name: str
    shape: Tuple[int, ...]
    dtype: str
    persistable: bool


@dataclass(frozen=True)
class ProgramInfo:
    """What a ``.pdmodel`` declares, read without running it.

    ``feeds`` are the model inputs in feed-column order (``shape`` with -1 for dynamic dims),
    ``fetch_names`` the output variables in fetch-column order, ``op_counts`` the number of ops of each
    type over all blocks (feed/fetch included), ``variables`` every dense tensor of block 0 by name,
    ``produced`` the names some op of block 0 writes (exports keep declarations of pruned outputs such
    as ``transpose2``'s ``XShape``), ``program_bytes`` the serialized program exactly as read.
    """

    path: Path
    feeds: Tuple[VarSpec, ...]
    fetch_names: Tuple[str, ...]
    op_counts: Dict[str, int]
    variables: Dict[str, VarSpec] = field(repr=False)
    produced: FrozenSet[str] = field(repr=False)
    program_bytes: bytes = field(repr=False)
    version: int = 0

    @property
    def feed_names(self) -> Tuple[str, ...]:
        return tuple(f.name for f in self.feeds)

    @property
    def parameters(self) -> Tuple[VarSpec, ...]:
        """Persistable tensors in the order a combined ``.pdiparams`` stores them (sorted by name)."""
        return tuple(v for _, v in sorted(self.variables.items()) if v.persistable)

    @property
    def dynamic_variables(self) -> Tuple[str, ...]:
        """Tensors computed by the program whose declared shape still has a dynamic (-1) dimension."""
        return tuple(
            n for n, v in self.variables.items()
            if n in self.produced and not v.persistable and any(d < 0 for d in v.shape)
        )


def parse_program(program_bytes: bytes, source_name: str = "<bytes>"):
    """Parse ``ProgramDesc`` bytes; raise :class:`EdgematteError` naming ``source_name`` if they are not one."""
    fp = _framework_pb2()
    if not program_bytes:
        raise EdgematteError(f"{source_name}: empty file, not a Paddle model")
    program = fp.ProgramDesc()
    try:
        program.ParseFromString(program_bytes)
    except Exception as e:  # protobuf's DecodeError, or a missing required field
        raise EdgematteError(f"{source_name}: corrupt or truncated Paddle model (not a ProgramDesc: {e})") from e
    if not program.blocks or not program.blocks[0].ops:
        raise EdgematteError(f"{source_name}: not a Paddle inference model (the program has no ops)")
    return program


def _var_spec(var, fp) -> Optional[VarSpec]:
    if var.type.type != fp.VarType.LOD_TENSOR:
        return None
    tensor = var.type.lod_tensor.tensor
    dtype_name = fp.VarType.Type.Name(tensor.data_type)
    dtype = _DTYPES.get(dtype_name, (dtype_name.lower(), 0))[0]
    return VarSpec(var.name, tuple(int(d) for d in tensor.dims), dtype, bool(var.persistable))


def _io_columns(block, op_type: str, slot: str, source_name: str) -> Tuple[str, ...]:
    """Variable names wired to the feed (slot ``Out``) or fetch (slot ``X``) ops, in ``col`` order."""
    by_col = {}
    for op in block.ops:
        if op.type != op_type:
            continue
        col = next((a.i for a in op.attrs if a.name == "col"), len(by_col))
        slots = [arg for var in (op.outputs if slot == "Out" else op.inputs) if var.parameter == slot
                 for arg in var.arguments]
        if len(slots) != 1 or col in by_col:
            raise EdgematteError(f"{source_name}: malformed {op_type} op (column {col}, variables {slots})")
        by_col[col] = slots[0]
    return tuple(by_col[c] for c in sorted(by_col))


def program_info(program_bytes: bytes, path) -> ProgramInfo:
    """:class:`ProgramInfo` of ``program_bytes`` (``path`` is recorded and named in errors)."""
    fp = _framework_pb2()
    path = Path(path)
    program = parse_program(program_bytes, str(path))
    block = program.blocks[0]
    variables = {}
    for var in block.vars:
        spec = _var_spec(var, fp)
        if spec is not None:
            variables[var.name] = spec
    feed_names = _io_columns(block, "feed", "Out", str(path))
    fetch_names = _io_columns(block, "fetch", "X", str(path))
    if not feed_names or not fetch_names:
        raise EdgematteError(
            f"{path}: not an inference model (it has {len(feed_names)} feed and {len(fetch_names)} fetch ops; "
            "export it with paddle.jit.save or PaddleSeg's tools/export.py)"
        )
    for name in feed_names + fetch_names:
        if name not in variables:
            raise EdgematteError(f"{path}: feed/fetch variable '{name}' is not declared in the program")
    op_counts = Counter(op.type for b in program.blocks for op in b.ops)
    return ProgramInfo(
        path=path,
        feeds=tuple(variables[n] for n in feed_names),
        fetch_names=fetch_names,
        op_counts=dict(op_counts.most_common()),
        variables=variables,
        produced=frozenset(arg for op in block.ops for out in op.outputs for arg in out.arguments),
        program_bytes=program_bytes,
        version=int(program.version.version),
    )


def _read_bytes(path: Path, kind: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as e:
        raise EdgematteError(f"{path}: cannot read the {kind}: {e.strerror or e}") from e


def read_program(pdmodel_path) -> ProgramInfo:
    """Read a ``.pdmodel``: feeds and their declared shapes, fetch names in order, op histogram, bytes.

    Raises :class:`EdgematteError` naming the file if it is unreadable, not a ProgramDesc, or has no
    feed/fetch ops (a training program rather than an inference export).
    """
    path = Path(pdmodel_path)
    return program_info(_read_bytes(path, "model"), path)


# ----------------------------------------------------------------------------- params file check
def check_params_file(info: ProgramInfo, params_path) -> int:
    """Check that a combined ``.pdiparams`` holds exactly the tensors ``info`` declares; return their count.

    Walks the file's records (per tensor: uint32 version, uint64 LoD levels with their data, uint32
    version, int32 length + ``TensorDesc`` protobuf, raw data) without loading the data, so a
    truncated, padded, mismatched or foreign file is reported with the tensor where it departs. Paddle
    itself only says "An error occurred while loading model parameters".
    """
    fp = _framework_pb2()
    path = Path(params_path)
    expected = info.parameters
    try:
        size = path.stat().st_size
        f = open(path, "rb")
    except OSError as e:
        raise EdgematteError(f"{path}: cannot read the parameters: {e.strerror or e}") from e

    def fail(index, spec, problem):
        where = f"tensor {index + 1} of {len(expected)} ('{spec.name}')"
        raise EdgematteError(f"{path}: corrupt or truncated parameters file at {where}: {problem}")

    def read_exact(n, index, spec, what):
        data = f.read(n)
        if len(data) != n:
            fail(index, spec, f"the file ends at byte {size} inside the {what}")
        return data

    with f:
        for index, spec in enumerate(expected):
            (lod_version,) = struct.unpack("<I", read_exact(4, index, spec, "header"))
            if lod_version != 0:
                fail(index, spec, f"unknown record version {lod_version}")
            (lod_levels,) = struct.unpack("<Q", read_exact(8, index, spec, "header"))
            if lod_levels > 8:
                fail(index, spec, f"implausible LoD level count {lod_levels}")
            for _ in range(lod_levels):
                (n,) = struct.unpack("<Q", read_exact(8, index, spec, "LoD"))
                if f.seek(n, 1) > size:
                    fail(index, spec, f"the file ends at byte {size} inside the LoD")
            version, desc_len = struct.unpack("<Ii", read_exact(8, index, spec, "tensor header"))
            if version != 0 or not 0 <= desc_len < 4096:
                fail(index, spec, f"bad tensor header (version {version}, description length {desc_len})")
            desc = fp.VarType.TensorDesc()
            try:
                desc.ParseFromString(read_exact(desc_len, index, spec, "tensor description"))
            except Exception as e:
                fail(index, spec, f"unreadable tensor description ({e})")
            dtype_name = fp.VarType.Type.Name(desc.data_type) if desc.data_type in fp.VarType.Type.values() else "?"
            if dtype_name not in _DTYPES:
                fail(index, spec, f"unsupported tensor data type {dtype_name} (code {desc.data_type})")
            dims = tuple(int(d) for d in desc.dims)
            if dims != spec.shape or _DTYPES[dtype_name][0] != spec.dtype:
                fail(index, spec, f"the file has {dtype_name} {list(dims)}, the model declares {spec.dtype} "
                                  f"{list(spec.shape)} (parameters of a different model?)")
            numel = 1
            for d in dims:
                numel *= d
            data_bytes = numel * _DTYPES[dtype_name][1]
            if f.tell() + data_bytes > size:
                fail(index, spec, f"needs {data_bytes} bytes of data at offset {f.tell()}, the file ends at {size}")
            f.seek(data_bytes, 1)
        if f.tell() != size:
            raise EdgematteError(
                f"{path}: {size - f.tell()} unexpected bytes after the {len(expected)} tensors the model declares "
                "(parameters of a different model?)"
            )
    return len(expected)


@dataclass
class ParamRecord:
    """One tensor of a combined ``.pdiparams``: its ``spec``, its LoD header bytes kept as read, its ``TensorDesc``
    (framework_pb2) and its raw little-endian data."""

    spec: VarSpec
    lod: bytes
    desc: object
    data: bytes

    @property
    def dtype(self) -> str:
        return _DTYPES[_framework_pb2().VarType.Type.Name(self.desc.data_type)][0]

    def array(self):
        """The tensor as a numpy array (a copy, of the stored dtype and shape)."""
        import numpy as np

        return np.frombuffer(self.data, dtype="<" + np.dtype(self.dtype).str[1:]).reshape(
            tuple(int(d) for d in self.desc.dims)).copy()

    def replaced(self, array) -> "ParamRecord":
        """This record holding ``array`` instead (same name and LoD; dtype and dims from ``array``)."""
        import numpy as np

        fp = _framework_pb2()
        codes = {numpy_name: getattr(fp.VarType, proto_name) for proto_name, (numpy_name, _) in _DTYPES.items()}
        array = np.ascontiguousarray(array)
        desc = fp.VarType.TensorDesc()
        desc.data_type = codes[array.dtype.name]
        desc.dims.extend(int(d) for d in array.shape)
        return ParamRecord(self.spec, self.lod, desc, array.astype(array.dtype.newbyteorder("<")).tobytes())

    def to_bytes(self) -> bytes:
        desc = self.desc.SerializeToString()
        return b"".join([self.lod, struct.pack("<Ii", 0, len(desc)), desc, self.data])


def read_param_records(info: ProgramInfo, params_path) -> List[ParamRecord]:
    """Every tensor of a combined ``.pdiparams``, in file order (checked first by :func:`check_params_file`, so
    the walk can trust the structure). ``b"".join(r.to_bytes() for r in records)`` writes the file back."""
    fp = _framework_pb2()
    check_params_file(info, params_path)
    data = Path(params_path).read_bytes()
    pos, records = 0, []
    for spec in info.parameters:
        start = pos
        (lod_levels,) = struct.unpack_from("<Q", data, pos + 4)
        pos += 12
        for _ in range(lod_levels):
            (n,) = struct.unpack_from("<Q", data, pos)
            pos += 8 + n
        lod = data[start:pos]
        _version, desc_len = struct.unpack_from("<Ii", data, pos)
        pos += 8
        desc = fp.VarType.TensorDesc()
        desc.ParseFromString(data[pos:pos + desc_len])
        pos += desc_len
        numel = 1
        for d in desc.dims:
            numel *= int(d)
        size = numel * _DTYPES[fp.VarType.Type.Name(desc.data_type)][1]
        records.append(ParamRecord(spec, lod, desc, data[pos:pos + size]))
        pos += size
    return records


def read_checked_model(source) -> Tuple[ModelFiles, ProgramInfo]:
    """Locate, read and cross-check a model's two files; the usual first step of every conversion."""
    files = locate_model_files(source)
    info = read_program(files.model)
    check_params_file(info, files.params)
    return files, info
