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


def run_facts(command):
    """What every harness records about its run: when, where, what."""
    import platform
    import subprocess
    from datetime import datetime, timezone

    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    return {
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{os.cpu_count()} cores, {platform.machine()}",
        "commit": commit,
        "command": command.strip(),
    }


def publish(result, out, benchmarks, write_section):
    """The result JSON, printed and saved, and its BENCHMARKS.md section."""
    import json

    with open(out, "w") as f:
        json.dump(result, f, indent=2)
    print(json.dumps(result, indent=2))
    if benchmarks:
        write_section(benchmarks, result)
