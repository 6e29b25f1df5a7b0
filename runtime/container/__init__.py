"""Container lifecycle: state store, launch, in-child setup, shim, exec, logs."""
