"""What views, manage.py commands and jobs share, one module per topic."""
