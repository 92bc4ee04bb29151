"""Great Expectations suites over the exports and the mix."""
