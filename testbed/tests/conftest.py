import sys
from pathlib import Path

# The bed's modules live one folder up (testbed/), run as scripts rather than installed.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
