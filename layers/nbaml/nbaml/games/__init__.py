"""Games: the clean record every feed produces, the team map, and defect accounting."""
