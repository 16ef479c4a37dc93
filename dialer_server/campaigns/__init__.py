"""Campaign operations of the API and the CLI: settings and state changes, status
dictionaries and dispositions, do-not-call lists, agent statistics, results export."""
