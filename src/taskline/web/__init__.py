"""The browser UI: a static single-page app shipped inside the package (no build step)."""
