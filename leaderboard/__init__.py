"""The static leaderboard: a pure function of results/ (see leaderboard.build).

display_schema.json names and explains every metric (HELM-style, one file); paper_rows.json holds the
seed papers' FAIR-Play tables, shown as reference rows and never ranked with ours.
"""
