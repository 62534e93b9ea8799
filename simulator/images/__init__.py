"""Images: references and their normalisation, and the OCI and Docker image formats."""
