"""Reading a snapshot as a person does: text rendering, statistics and the
``ringtrace`` command. Needs no pytest; the plugin's terminal section is built
from these pieces."""
