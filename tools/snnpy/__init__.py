"""snncl's Python helpers, one copy of each, for the tools, fixtures, fuzz corpora and
tests: put tools/ on sys.path and import what you need.

  snnpy.paths        where the repository and the seed are (standard library only)
  snnpy.safetensors  the safetensors codec: Tensor/read/write with the standard
                     library alone (the CLI tests, the fuzz corpus), and st_encode /
                     st_decode / st_read / st_write on numpy arrays (strict layout,
                     exact dtype conversion) for the fixture and interop tools
  snnpy.philox       Philox4x32-10 and snncl's dropout mask (numpy)
  snnpy.seed         the seed's models (PyTorch + snnTorch): load_seed, CaseConfig,
                     build_model, lif_modules

The float64 reference computations (Benettin forward, training gradients) stay in
tools/gen_fixtures.py, which alone uses them.
"""
