"""Content monitoring: what is inside the sampled Time Frames.

As ALICE's QC splits it: a decoder reads a TF's bytes into hits (``decoding``, with the
testbed's layout ``etf1`` built in), the detector map says which source belongs to which
detector (``detectors``), a task fills histograms from a batch of hits (``histograms``; sites add
their own tasks), partial histograms are stored with the samples that gave them and folded into
each run's once per cycle by one merger (``merging``), a detector's reference is a copy of one
run's histograms (``references``), and the run's histograms are served as UHI JSON and ROOT
files (``served``).
"""
