// Intentionally empty: this crate only pins the msquic source version.
