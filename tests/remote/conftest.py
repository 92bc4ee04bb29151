"""Remote-storage fixtures (see remote_helpers.py)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from remote_helpers import _template_repo, dvc_repo, moto_s3, sshd  # noqa: E402,F401  (pytest fixtures)
