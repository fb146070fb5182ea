"""Auth: pachd's tokens, roles and role bindings as an engine, and `auth_v2.API` with the gate every
call passes (`service`)."""
