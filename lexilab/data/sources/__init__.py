"""Built-in datasets: each module registers one or more loaders when imported."""
from lexilab.data.sources import (  # noqa: F401  (imported for their registrations)
    ag_news,
    arxiv,
    file,
    goemotions,
    leximind,
    newsgroups,
    scitldr,
    sumpubmed,
    topics7,
)
