"""``crossdiff evaluate``: reduced- and full-resolution evaluation of pansharpening methods and
fused products on scenes or files, with a Markdown/JSON report and quicklook PNGs.

Entry points: :func:`runner.evaluate_scenes` (scenes found by the archive discovery),
:func:`files.evaluate_reduced_files` / :func:`files.evaluate_full_files` (products given
as GeoTIFF or ``.npy`` files) and :func:`report.write_report`.
"""

from crossdiff.platform.evaluation.files import evaluate_full_files, evaluate_reduced_files
from crossdiff.platform.evaluation.inputs import NPY_LAYOUT, read_image
from crossdiff.platform.evaluation.report import write_report
from crossdiff.platform.evaluation.runner import (
    EvaluationResult,
    SceneResult,
    evaluate_scene,
    evaluate_scenes,
    resolve_methods,
)
from crossdiff.platform.evaluation.scenes import Scene, find_scenes, load_scene

__all__ = [
    "NPY_LAYOUT",
    "EvaluationResult",
    "Scene",
    "SceneResult",
    "evaluate_full_files",
    "evaluate_reduced_files",
    "evaluate_scene",
    "evaluate_scenes",
    "find_scenes",
    "load_scene",
    "read_image",
    "resolve_methods",
    "write_report",
]
