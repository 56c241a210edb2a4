"""Writers of scan results: JSON now; HTML, CSV and nmap XML build on the same models."""
