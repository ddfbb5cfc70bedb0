# Sourced by the install scripts: need_disk MB DIR WHAT fails with a line naming WHAT, the space it needs and the space
# left, when the filesystem holding DIR (or its nearest existing parent) has less than MB megabytes free.
need_disk() {
  local need_mb=$1 dir=$2 what=$3 free_mb
  while [ ! -e "$dir" ]; do dir=$(dirname "$dir"); done
  free_mb=$(df -Pm "$dir" | awk 'NR == 2 {print $4}')
  if [ -n "$free_mb" ] && [ "$free_mb" -lt "$need_mb" ]; then
    echo "not enough disk for $what: it needs about $need_mb MB, $free_mb MB are free on $(df -P "$dir" | awk 'NR == 2 {print $6}')" >&2
    return 1
  fi
}
