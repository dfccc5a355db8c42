"""Writes one section of BENCHMARKS.md for the harnesses under bench/
(quality, scale, load): the text from the section's `## ` header up to the
next `## ` header is replaced, or the section is appended when absent, so
a rerun updates its own numbers and leaves the other sections alone.
"""

import os


def replace_section(path, header, section):
    text = open(path).read() if os.path.exists(path) else "# Benchmarks\n"
    start = text.find(header + "\n")
    if start < 0:
        text = text.rstrip("\n") + "\n\n" + section
    else:
        nxt = text.find("\n## ", start + len(header))
        rest = text[nxt + 1 :] if nxt >= 0 else ""
        text = text[:start] + section.rstrip("\n") + "\n\n" + rest
    with open(path, "w") as f:
        f.write(text.rstrip("\n") + "\n")
