"""Where images live (local disk now, S3-compatible later) and the signed URLs that reach them."""
