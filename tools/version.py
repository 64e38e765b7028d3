#!/usr/bin/env python3
"""Prints the version from include/snncl.h, so meson and the header never disagree."""
import pathlib
import re

header = pathlib.Path(__file__).resolve().parent.parent / "include" / "snncl.h"
text = header.read_text()
parts = [re.search(rf"#define SNNCL_VERSION_{p} (\d+)", text).group(1) for p in ("MAJOR", "MINOR", "PATCH")]
print(".".join(parts))
