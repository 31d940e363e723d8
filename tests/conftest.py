"""Test isolation: every pytest process gets its own ROS_DOMAIN_ID and localhost-only
discovery, inherited by the node processes the tests start."""
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

if "AUTONOMY_TEST_DOMAIN_FIXED" not in os.environ:
    # 1..100 avoids 0 (the default everyone else uses); pid-based so parallel runs differ.
    os.environ["ROS_DOMAIN_ID"] = str(1 + os.getpid() % 100)
os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
os.environ.setdefault("FASTDDS_DEFAULT_PROFILES_FILE", str(ROOT / "config" / "fastdds_profile.xml"))
os.environ.setdefault("RMW_IMPLEMENTATION", "rmw_fastrtps_cpp")
os.environ.setdefault("OMP_NUM_THREADS", "2")
