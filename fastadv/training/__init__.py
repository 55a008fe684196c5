"""Training the shipped networks: one module a family, one checkpoint format (`checkpoint`).

    python -m fastadv.training segmentation ...   the SynthCity segmentation models
    python -m fastadv.training evaluate ...       their mIoU on a SynthCity split
    python -m fastadv.training scenes ...         the SynthScenes scene classifier
    python -m fastadv.training mindseye STAGE     Berntsen et al.'s networks, stage by stage

docs/weights.md, docs/protect.md and docs/mindseye.md have the commands that made the shipped
weights. A stopped run resumes when its command is run again.
"""
