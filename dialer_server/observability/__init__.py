"""What ops watch: the Prometheus metrics, the gauges read from PostgreSQL, JSON logs."""
