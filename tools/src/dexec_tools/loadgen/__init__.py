"""`dexec-load`: a load generator that submits orders and follows each one to its end.

The parent process (`cli`, `runner`) splits the run among worker processes (`worker`), shows
the progress bar and samples the services' memory (`rss`). Each worker runs its own event loop:
it paces and posts its share of the orders (`schedule`, `submit`) and follows every accepted
order over WebSockets (`follow`), recording raw samples only (`samples`). The parent merges
the samples and computes every figure (`stats`), then prints and saves the report (`report`).
"""
