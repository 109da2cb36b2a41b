"""One tiny app per benchmarked Python stack, configured from BENCH_* environment variables.

Every app serves the same two pages with the same bodies:
  GET /count  visit counter: session["views"] += 1, modified on every request -> "views=N"
  GET /read   reads the session only -> "views=N"
"""
