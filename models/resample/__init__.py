"""Resampling science of the reference toolbox: MTF filters, MATLAB imresize,
the 23-tap interpolator, sub-pixel shifts and Wald-protocol reduced-resolution pairs."""

from crossdiff.models.resample.imresize import imresize
from crossdiff.models.resample.interp23 import interp23tap
from crossdiff.models.resample.mtf import lpfilter_gauss, mtf_filter, mtf_kernels
from crossdiff.models.resample.shift import fourier_shift
from crossdiff.models.resample.wald import decimate, wald_pair

__all__ = [
    "decimate", "fourier_shift", "imresize", "interp23tap", "lpfilter_gauss", "mtf_filter", "mtf_kernels", "wald_pair",
]
