"""The Workbench's browser assets (served by ``imagehub.api.routes.workbench``)."""
