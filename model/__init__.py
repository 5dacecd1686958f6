"""Models: configs, parameter declarations, transformer / Mamba-2 / hybrid forward passes."""

from model import tpu_host

tpu_host.describe_host_without_tpus()   # before JAX starts libtpu (model/tpu_host.py)
