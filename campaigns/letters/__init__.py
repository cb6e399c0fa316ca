"""Letters: authoring versions (validation, CSS inlining, links) and rendering them safely."""
