"""Ways out: one module (or package) per provider, all behind `base.Channel`."""
