"""The learning loop: consensus labels -> dataset -> retrain -> predictions -> the better model serves."""
