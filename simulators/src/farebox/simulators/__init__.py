"""farebox.simulators: cards, scanners, fleets and load that drive the real farebox code."""
