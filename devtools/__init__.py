"""Dev-only code: the local dev host and the ``ihub`` command line.

Nothing here ships: ``.funcignore`` excludes this package (and ``sandbox/``) from the
deployment package, and ``tests/test_deployment_package.py`` proves that no deployable file
imports it.
"""
