"""What the browser meets besides the storage API: tasks' files streamed from the mounts, and the links
added to Label Studio's own pages."""
