"""The scarce-site experiment's figure: per site, each scheme's Dice of every (fold, seed) unit."""

from pathlib import Path

from plots import _save, plt
from scarce_report import LABELS, ORDER, sites_of, unit_scores


def dice_per_site(results, path: Path):
    sites = sites_of(results)
    schemes = [s for s in ORDER if any(r["scheme"] == s for r in results)]
    fig, ax = plt.subplots(figsize=(10, 4.5))
    width = 0.8 / max(len(schemes), 1)
    colors = plt.cm.tab10.colors
    for i, scheme in enumerate(schemes):
        for k, site in enumerate(sites):
            scores = list(unit_scores(results, scheme, site).values())
            x = k + (i - (len(schemes) - 1) / 2) * width
            ax.scatter([x] * len(scores), scores, s=12, color=colors[i % len(colors)],
                       label=LABELS[scheme] if k == 0 else None)
            if scores:
                ax.hlines(sum(scores) / len(scores), x - width / 2, x + width / 2,
                          color=colors[i % len(colors)])
    ax.set_xticks(range(len(sites)), sites)
    ax.set_ylabel("mean Dice of the held-out subjects")
    ax.set_ylim(0, 1)
    ax.set_title("Per site: one dot per (fold, seed), a bar at their mean")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    _save(fig, path)
