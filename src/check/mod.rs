//! See ARCHITECTURE.md for what this module owns.
