"""The source document 001's cluster pool, shared by the tests that replay it."""

SEED_CLUSTER_CIDRS = ["10.20.30.40/24", "50.60.70.80/24"]
SEED_MASK_SIZE = 26
SEED_NODE_CIDRS = [
    "10.20.30.0/26",
    "10.20.30.64/26",
    "10.20.30.128/26",
    "10.20.30.192/26",
    "50.60.70.0/26",
    "50.60.70.64/26",
    "50.60.70.128/26",
    "50.60.70.192/26",
]
