"""Host CPU model: raw registers -> HostCPU."""
