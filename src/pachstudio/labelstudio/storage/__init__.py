"""The `pachyderm` Source and Target storage types, shaped like Label Studio's `io_storages/<provider>/`:
models, API and form, the syncs and their background jobs, the mounts they use and give back."""
