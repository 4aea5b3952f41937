"""The build: the run file, incremental execution with papermill, HTML/PDF rendering, atomic publish."""
