"""The podnet CNI plugin (spec 1.1). Standard library only: it is exec'd per call."""
