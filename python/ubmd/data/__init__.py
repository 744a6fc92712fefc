"""Structures, their labels, graphs, data sets and splits (the bottom layer: no model here).

:mod:`.structures` reads and writes structure files, :mod:`.labels` finds labels under any key
names, :mod:`.graphs` turns structures into the graphs and batches the model evaluates.
"""

from .graphs import (GraphDataset, Split, atoms_to_graph, collate, species_map_from,
                     split_indices)
from .labels import (LABEL_KEYS, describe_keys, frame_labels, get_labels, label_keys_from,
                     naming_structure, no_labels_message, with_standard_labels)
from .structures import read_structure_files, read_structures, write_structures

__all__ = ["GraphDataset", "LABEL_KEYS", "Split", "atoms_to_graph", "collate", "describe_keys",
           "frame_labels", "get_labels", "label_keys_from", "naming_structure",
           "no_labels_message", "read_structure_files", "read_structures", "species_map_from",
           "split_indices", "with_standard_labels", "write_structures"]
