"""Pansharpening quality metrics that reproduce the field's MATLAB reference
toolbox (Vivone et al.): reduced-resolution Q2n, Q, SAM, ERGAS, SCC, PSNR and
full-resolution D_lambda_K, D_s, HQNR, D_lambda, QNR. See DESIGN.md section 4.
"""

from crossdiff.models.metrics.full import (
    d_lambda_khan,
    d_lambda_qnr,
    d_s,
    full_resolution_metrics,
    hqnr,
    pan_low_pass,
    resolve_gains,
)
from crossdiff.models.metrics.q2n import onion_mult, q2n, to_uint16_grid
from crossdiff.models.metrics.reduced import (
    cut_borders,
    ergas,
    psnr,
    reduced_resolution_metrics,
    sam,
    scc,
)
from crossdiff.models.metrics.uiqi import q_index, uiqi_block_mean

__all__ = [
    "cut_borders",
    "d_lambda_khan",
    "d_lambda_qnr",
    "d_s",
    "ergas",
    "full_resolution_metrics",
    "hqnr",
    "onion_mult",
    "pan_low_pass",
    "psnr",
    "q2n",
    "q_index",
    "reduced_resolution_metrics",
    "resolve_gains",
    "sam",
    "scc",
    "to_uint16_grid",
    "uiqi_block_mean",
]
