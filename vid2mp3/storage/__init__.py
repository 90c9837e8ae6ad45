"""Blob store adapters: ``local.py`` (file://), ``gridfs.py`` (mongodb://), ``s3.py`` (s3://)."""
