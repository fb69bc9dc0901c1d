"""Fold the categorical preprocessing of a served graph into one table lookup.

A category reaches the user's graph as one of k+1 strings (its k categories, or ``""`` for null and
unknown). The nodes that depend on the categorical columns alone (string imputers, one-hot or
ordinal encoders, the Concat that joins them) compute, per row, a function of those few codes. In
the pipelines people write that function is *separable*: each output column depends on one
categorical input only, so it equals ``base + sum_i delta_i[code_i]`` where ``base`` is the output
for an all-null row and ``delta_i[v]`` the change when feature ``i`` takes value ``v``. Those
tables are computed here by running the subgraph on every value, the separability is checked on
random rows, and the subgraph is replaced by four nodes (Add offsets, Gather, ReduceSum, Add base).
ONNX Runtime pays a fixed cost per node, so this is most of a one-row prediction's time.

Correctness does not rest on this module: the caller checks parity of the final graph against the
scikit-learn pipeline, and a subgraph that is not separable, not row-wise or not numeric is left
as it was.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

__all__ = ["fold_categories"]

CHECK_ROWS = 256
"""Random combinations of categories on which separability is verified."""


def _subgraph(graph: Any, sources: set[str]) -> list[Any]:
    """Nodes whose every non-constant input derives from ``sources`` only, in graph order."""
    constants = {i.name for i in graph.initializer}
    derived = set(sources)
    nodes = []
    for n in graph.node:
        if n.op_type == "Constant":
            constants.update(n.output)
            continue
        live = [i for i in n.input if i and i not in constants]
        subgraph = any(a.type in (5, 10) for a in n.attribute)  # GRAPH / GRAPHS attributes: leave alone
        if not live and not subgraph and not n.op_type.startswith("Random"):
            constants.update(n.output)  # computed from constants only: a constant too (copied along)
            nodes.append(n)
        elif live and not subgraph and all(i in derived for i in live):
            derived.update(n.output)
            nodes.append(n)
    return nodes


def _frontier(graph: Any, nodes: Sequence[Any]) -> list[str]:
    inside = {id(n) for n in nodes}
    used = {i for n in graph.node if id(n) not in inside for i in n.input} | {o.name for o in graph.output}
    return [o for n in nodes for o in n.output if o in used]


def _run(
    model: Any, nodes: Sequence[Any], inputs: Sequence[str], outputs: Sequence[str], feeds: Mapping[str, np.ndarray]
) -> list[np.ndarray] | None:
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper

    graph = model.graph
    inferred = onnx.shape_inference.infer_shapes(model)
    types = {v.name: v for v in [*inferred.graph.value_info, *inferred.graph.output]}
    if any(o not in types for o in outputs):
        return None
    sub = helper.make_graph(
        list(nodes),
        "fold",
        [helper.make_tensor_value_info(i, TensorProto.STRING, [None, 1]) for i in inputs],
        [types[o] for o in outputs],
        initializer=list(graph.initializer),
    )
    sub_model = helper.make_model(sub, opset_imports=list(model.opset_import))
    sub_model.ir_version = model.ir_version
    try:
        opts = ort.SessionOptions()
        opts.log_severity_level = 3  # the subgraph carries every initializer of the graph: no warnings
        session = ort.InferenceSession(
            sub_model.SerializeToString(), sess_options=opts, providers=["CPUExecutionProvider"]
        )
        return [np.asarray(t) for t in session.run(list(outputs), dict(feeds))]
    except Exception:  # not runnable on its own: leave the graph as it is
        return None


def fold_categories(data: bytes, categories: Mapping[str, Sequence[Any]], prefix: str, null: str, codes: str) -> bytes:
    """``data`` with the categorical-only subgraph replaced by table lookups when it is separable.

    ``categories`` maps each categorical feature the graph reads (in the column order of ``codes``,
    the adapter's int64 [N, k] tensor of category codes, -1 for null/unknown) to its categories; the
    user's graph reads feature ``f`` as ``prefix + f``, with ``null`` for null/unknown.
    """
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load_from_string(data)
    graph = model.graph
    names = list(categories)
    inputs = [prefix + n for n in names]
    mappers = [n for n in graph.node if n.op_type == "CategoryMapper" and n.output[0] in inputs]
    nodes = _subgraph(graph, set(inputs))
    outputs = _frontier(graph, nodes)
    if len(mappers) != len(inputs) or not nodes or not outputs:
        return data
    # rows: 0 = all null; then one row per (feature, category); then random combinations
    sizes = [len(categories[n]) for n in names]
    rng = np.random.default_rng(0)
    random_codes = np.stack([rng.integers(-1, k, CHECK_ROWS) for k in sizes], axis=1) if sizes else None
    rows = [np.full(len(names), -1)]
    for i, k in enumerate(sizes):
        for v in range(k):
            r = np.full(len(names), -1)
            r[i] = v
            rows.append(r)
    assert random_codes is not None
    all_codes = np.vstack([np.asarray(rows), random_codes])
    feeds = {}
    for i, n in enumerate(names):
        values = np.asarray([null, *(str(c) for c in categories[n])], dtype=object)
        feeds[prefix + n] = values[all_codes[:, i] + 1].reshape(-1, 1)
    results = _run(model, nodes, inputs, outputs, feeds)
    if results is None:
        return data
    offsets = np.concatenate([[0], np.cumsum([k + 1 for k in sizes])[:-1]]).astype(np.int64)
    new_nodes = [helper.make_node("Add", [codes, "dl_fold_offsets"], ["dl_fold_rows"])]
    inits = [numpy_helper.from_array((offsets + 1).reshape(1, -1), "dl_fold_offsets")]
    for out, result in zip(outputs, results, strict=True):
        if result.dtype.kind not in "fiub" or result.ndim < 1 or result.shape[0] != len(all_codes):
            return data
        values = result.astype(np.float64)
        base = values[0]
        table = np.zeros((int(sum(k + 1 for k in sizes)), *values.shape[1:]), dtype=np.float64)
        at = 1
        for i, k in enumerate(sizes):
            table[offsets[i] + 1 : offsets[i] + 1 + k] = values[at : at + k] - base
            at += k
        rebuilt = base + table[all_codes[len(rows) :] + offsets + 1].sum(axis=1)
        if not np.allclose(rebuilt, values[len(rows) :], rtol=0, atol=1e-9):
            return data  # not separable by column
        dtype = result.dtype
        inits += [
            numpy_helper.from_array(table.astype(dtype), f"{out}_fold_table"),
            numpy_helper.from_array(base[None, ...].astype(dtype), f"{out}_fold_base"),
        ]
        new_nodes += [
            helper.make_node("Gather", [f"{out}_fold_table", "dl_fold_rows"], [f"{out}_fold_each"], axis=0),
            _reduce_sum(f"{out}_fold_each", f"{out}_fold_sum", model, inits),
            helper.make_node("Add", [f"{out}_fold_sum", f"{out}_fold_base"], [out]),
        ]
    drop = {id(n) for n in nodes} | {id(m) for m in mappers}
    kept = [n for n in graph.node if id(n) not in drop]
    at_codes = next((i + 1 for i, n in enumerate(kept) if codes in n.output), 0)
    del graph.node[:]
    graph.node.extend([*kept[:at_codes], *new_nodes, *kept[at_codes:]])
    graph.initializer.extend(inits)
    used = {i for n in graph.node for i in n.input}
    unused = [n for n in graph.node if n.op_type == "Split" and all(o not in used for o in n.output)]
    for n in unused:  # the per-column code split fed only the CategoryMappers
        graph.node.remove(n)
    used = {i for n in graph.node for i in n.input} | {o.name for o in graph.output}
    keep = [i for i in graph.initializer if i.name in used]
    del graph.initializer[:]
    graph.initializer.extend(keep)
    try:
        onnx.checker.check_model(model)
    except Exception:
        return data
    return bytes(model.SerializeToString())


def _reduce_sum(source: str, target: str, model: Any, inits: list[Any]) -> Any:
    from onnx import helper, numpy_helper

    opset = next((o.version for o in model.opset_import if (o.domain or "") == ""), 0)
    if opset >= 13:
        inits.append(numpy_helper.from_array(np.asarray([1], dtype=np.int64), f"{target}_axes"))
        return helper.make_node("ReduceSum", [source, f"{target}_axes"], [target], keepdims=0)
    return helper.make_node("ReduceSum", [source], [target], axes=[1], keepdims=0)
