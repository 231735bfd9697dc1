"""`make demo`: a realistic scenario on the embedded default, through the real HTTP endpoints.

Three users request different tiers (one auto-approved, one approved by a click, one denied);
a pod with unchanged YAML lands on its tier and one over quota is refused; a shortage moves a
node between tiers; a request waits; an expiry warning is extended from its button; a lease
expires and the waiting request is placed. Prints a timeline and a capacity table, writes an
HTML report, and exits non-zero naming any step that did not happen.
"""
