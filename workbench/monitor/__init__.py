"""Quality in production: online scores, feedback and guard hits of served requests.

```python
from workbench import monitor
monitor.quality("support-triage", since="7d")     # online scores vs the offline estimate
monitor.guard_hits(since="24h")                    # per application, guard, stage, action
monitor.to_evalset("support-triage", where="feedback == 0 or flagged")
```

Serving writes the rows (``PromptService(guard=..., monitor=...)``); this package reads them.
"""

from __future__ import annotations

from .online import MonitorConfig, MonitorConfigError, OnlineMonitor
from .sequential import Alarm, DropDetector
from .traffic import TrafficQueryError, guard_hits, quality, requests, to_evalset

__all__ = ["Alarm", "DropDetector", "MonitorConfig", "MonitorConfigError", "OnlineMonitor",
           "TrafficQueryError", "guard_hits", "quality", "requests", "to_evalset"]
