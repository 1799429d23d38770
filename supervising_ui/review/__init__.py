"""Labels a team can trust (issue 25): consensus method, agreement, the review queue.

- aggregate.py: votes -> classes, posteriors, labelers' confusions (majority, or crowd-kit's
  Dawid-Skene), pure functions the benchmark runs too;
- consensus_jobs.py: the consensus job (refit in the worker, store per image) and when it runs;
- agreement.py: per labeler, per class, pairwise figures; its CSV;
- queue.py: which image a reviewer sees next; decisions.py: accept, fix, reject;
- access.py: who may see what, and the consensus method setting; views.py: pages and API.
"""
