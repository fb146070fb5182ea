"""A Target's versions: its commits and tags, what changed between two, bringing one back, and the
Versions page over them."""
