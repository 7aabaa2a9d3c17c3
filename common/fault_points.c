#include "common/fault_points.h"

static const char *const point_names[FAULT_POINT_COUNT] = {"after_begin", "after_neo4j_statements",
                                                           "after_sqlite_commit",
                                                           "after_neo4j_commit", "behind_flight"};

const char *fault_point_name(enum fault_point point)
{
    return point_names[point];
}
